import { execFile, splitCommandLine } from '../../lib/exec';
import { clearSecrets, mask, maskDeep, registerSecret } from '../../lib/mask';
import { cutText, fitText } from '../../core/plugins/contract';

describe('command lines without a shell', () => {
  it('splits words and quotes like a shell, expanding nothing', () => {
    expect(splitCommandLine(`cat /etc/x`)).toEqual(['cat', '/etc/x']);
    expect(splitCommandLine(`pass show 'homelab/pbs token' "a \\"b\\" $HOME"`)).toEqual([
      'pass',
      'show',
      'homelab/pbs token',
      'a "b" $HOME',
    ]);
    expect(splitCommandLine(`echo a\\ b ''`)).toEqual(['echo', 'a b', '']);
  });

  it('refuses shell operators and unterminated quotes', () => {
    expect(() => splitCommandLine('cat x | head')).toThrow(/without a shell/);
    expect(() => splitCommandLine('echo "x')).toThrow(/unterminated/);
  });

  it('runs a command with a timeout', async () => {
    await expect(execFile('sleep', ['5'], { timeoutMs: 100 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    const r = await execFile('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('stops a command when its signal aborts', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(execFile('sleep', ['5'], { signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('names a missing command', async () => {
    await expect(execFile('no-such-command-xyz', [])).rejects.toThrow(/command not found: no-such-command-xyz/);
  });
});

describe('secret masking', () => {
  afterEach(clearSecrets);

  it('masks the password of a URL but not a short user name or a plain word of its path', () => {
    registerSecret('https://user:Pw9x2kQ7@files.lan/Nextcloud/remote.php');
    expect(mask('user admin uploads to /Nextcloud with Pw9x2kQ7')).toBe('user admin uploads to /Nextcloud with ********');
  });
  it('masks every registered secret, longest first, in text and nested values', () => {
    registerSecret('s3cr3t-token');
    registerSecret('s3cr3t');
    expect(mask('token=s3cr3t-token and s3cr3t')).toBe('token=******** and ********');
    expect(maskDeep({ a: ['x s3cr3t'], b: 1 })).toEqual({ a: ['x ********'], b: 1 });
  });

  it('masks the secret parts of a URL wherever they turn up alone: path tokens, userinfo, secret query keys', () => {
    registerSecret('https://hooks.slack.com/services/T0ABC1234/B0DEF5678/xoxbSecretToken42');
    registerSecret('https://discord.com/api/webhooks/123456789012345678/aTokenWithDashes-and_underscores-0123456789');
    registerSecret('https://alice:pa55word@hooks.lan/send?token=qwerty1234&channel=ops');
    registerSecret('https://sms.lan/send'); // a plain URL: no word of it becomes a secret
    expect(mask('404: no_service xoxbSecretToken42')).toBe('404: no_service ********');
    expect(mask('unknown webhook aTokenWithDashes-and_underscores-0123456789')).toBe('unknown webhook ********');
    expect(mask('bad login pa55word, bad token qwerty1234')).toBe('bad login ********, bad token ********');
    expect(mask('services and webhooks send to channel ops on hooks.lan')).toBe('services and webhooks send to channel ops on hooks.lan');
  });
});

describe("fitting text into a channel's limit", () => {
  it('cuts on code points, never inside a surrogate pair', () => {
    expect(cutText('ab😀😀😀', 4)).toBe('ab😀…');
    expect(cutText('short', 10)).toBe('short');
    const fitted = fitText('😀'.repeat(50), 21);
    expect(fitted.length).toBeLessThanOrEqual(21);
    expect(fitted).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });

  it('keeps every item it can, cuts a long one, and counts the rest', () => {
    const lines = ['x'.repeat(5000), ...Array.from({ length: 300 }, (_, i) => `failure ${i}`)];
    const out = fitText(lines.join('\n'), 3000).split('\n');
    expect(out.join('\n').length).toBeLessThanOrEqual(3000);
    expect(out[0]).toMatch(/^x+…$/);
    expect(out[1]).toBe('failure 0');
    expect(out.at(-1)).toMatch(/^\.\.\. and \d+ more$/);
    expect(out.length - 2 + Number(/(\d+) more/.exec(out.at(-1) as string)?.[1])).toBe(300);
    // measured as the channel measures (ntfy: UTF-8 bytes), escaped as it escapes
    const bytes = fitText('é'.repeat(3000) + '\nnext', 4096, {
      measure: (t) => Buffer.byteLength(t),
      escape: (t) => t.replace(/&/g, '&amp;'),
    });
    expect(Buffer.byteLength(bytes)).toBeLessThanOrEqual(4096);
    expect(fitText('a & b', 100, { escape: (t) => t.replace(/&/g, '&amp;') })).toBe('a &amp; b');
  });
});
