/**
 * Usage errors in the tool's own style: a flag or argument oclif cannot parse, and a command
 * that does not exist (with "did you mean"). Both exit 2 with the whole reason.
 */
import { didYouMean } from '../core/config/errors';
import { AutopilotError } from '../lib/errors';

/** oclif's parse error, as one line: "Parsing --limit \n\tExpected an integer…\nSee more help with --help" -> "--limit: expected an integer…". */
export function usageError(err: unknown, bin: string, id: string | undefined): AutopilotError {
  const raw = err instanceof Error ? err.message : String(err);
  const text = raw
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^See more help with/i.test(l))
    .join(' ')
    .replace(/\s+/g, ' ')
    .replace(/^Parsing (--?\S+) (.)/, (_, flag: string, c: string) => `${flag}: ${c.toLowerCase()}`)
    .replace(/^(Missing 1 required arg:) (\S+) (.+)$/, '$1 $2 ($3)');
  const command = id ? ` ${id.replace(/:/g, ' ')}` : '';
  return new AutopilotError('USAGE', text.charAt(0).toLowerCase() + text.slice(1), { hint: `see ${bin}${command} --help` });
}

/**
 * The error for a command that does not exist: the words typed (as many as match a command
 * best: `confg validate`, or `bakup` of `bakup web`) and the nearest command, if one is near.
 */
export function unknownCommand(words: string[], commandIds: string[], bin: string): AutopilotError {
  const names = [...new Set(commandIds.map((id) => id.replace(/:/g, ' ')))];
  let typed = words.slice(0, 2).join(' ');
  let best: string | undefined;
  for (const n of [2, 1]) {
    if (words.length < n) continue;
    const guess = didYouMean(words.slice(0, n).join(' '), names);
    if (guess) {
      typed = words.slice(0, n).join(' ');
      best = guess;
      break;
    }
  }
  return new AutopilotError('USAGE', `'${typed}' is not a ${bin} command${best ? ` (did you mean '${best}'?)` : ''}`, {
    hint: `'${bin} help' lists the commands`,
  });
}

/** Writes a usage error as every command does (bin/base.ts): `error:`/`hint:` on stderr, or `{"error": …}` with --json. */
export function printUsageError(e: AutopilotError, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message, hint: e.hint } }, null, 2) + '\n');
  else process.stderr.write(`error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
}
