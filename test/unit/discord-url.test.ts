/**
 * The discord channel's webhook_url schema accepts exactly the URLs discord.js's WebhookClient
 * accepts (its parseWebhookURL): a URL the config passes is never refused at every send.
 */
import { parseWebhookURL } from 'discord.js';
import discord from '../../plugins/notifications/discord';

const schema = (discord.channelSchema as { properties: { webhook_url: { pattern: string } } }).properties.webhook_url;
// ajv tests a pattern as an unanchored RegExp with the u flag
const accepts = (url: string): boolean => new RegExp(schema.pattern, 'u').test(url);

const id = '123456789012345678';
const token = 'a'.repeat(34) + '-_'.repeat(17);

describe('discord webhook_url', () => {
  it.each([
    `https://discord.com/api/webhooks/${id}/${token}`,
    `https://ptb.discord.com/api/v10/webhooks/${id}/${token}`,
    `https://canary.discord.com/api/v9/webhooks/${id}/${token}`,
    `http://discord.com/api/webhooks/${id}/${token}`,
    `HTTPS://Discord.COM/API/Webhooks/${id}/${token}`,
    `https://discord.com/api/webhooks/${id}/${token}?wait=true`,
    `https://discordapp.com/api/webhooks/${id}/${token}`,
    `https://discord.com/api/webhooks/12345678901234567890/${token}`,
    `https://discord.com/api/webhooks/1234567890123456/${token}`,
    `https://discord.com/api/webhooks/${id}/${'a'.repeat(60)}`,
    `https://discord.com/api/webhooks/${id}/${'a'.repeat(67)}`,
    `https://discord.com/api/v100/webhooks/${id}/${token}`,
    `https://evil.example/discord.com/api/webhooks/${id}/${token}`,
    `https://discord.com/api/webhooks/${id}`,
  ])('%s: the schema agrees with discord.js', (url) => {
    expect(accepts(url)).toBe(parseWebhookURL(url) !== null);
  });

  it('accepts the URL Discord shows and refuses discordapp.com, which discord.js refuses at every send', () => {
    expect(accepts(`https://discord.com/api/webhooks/${id}/${token}`)).toBe(true);
    expect(accepts(`https://discordapp.com/api/webhooks/${id}/${token}`)).toBe(false);
  });
});
