import { execFile, splitCommandLine } from '../../lib/exec';
import { clearSecrets, mask, maskDeep, registerSecret } from '../../lib/mask';

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
  it('masks every registered secret, longest first, in text and nested values', () => {
    registerSecret('s3cr3t-token');
    registerSecret('s3cr3t');
    expect(mask('token=s3cr3t-token and s3cr3t')).toBe('token=******** and ********');
    expect(maskDeep({ a: ['x s3cr3t'], b: 1 })).toEqual({ a: ['x ********'], b: 1 });
  });
});
