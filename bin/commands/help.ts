import * as Args from '@oclif/core/args';
import { Help } from '@oclif/core/help';
import { BaseCommand } from '../base';
import { unknownCommand } from '../usage';

export default class HelpCommand extends BaseCommand<typeof HelpCommand> {
  static override summary = 'Show the commands, or the help of one command.';
  static override description = 'The same as --help: `help backup` shows what `backup --help` shows.';
  static override examples = ['<%= config.bin %> help', '<%= config.bin %> help backup', '<%= config.bin %> help backups list'];
  static override strict = false;
  static override args = { command: Args.string({ description: 'a command or topic, e.g. backup or backups list' }) };

  async run(): Promise<void> {
    const { argv } = await this.parse(HelpCommand);
    const words = (argv as string[]).filter((a) => !a.startsWith('-'));
    const id = words.join(':');
    if (words.length && !this.config.findCommand(id) && !this.config.findTopic(id))
      throw unknownCommand(words, this.config.commandIDs, this.config.bin);
    await new Help(this.config).showHelp(words);
  }
}
