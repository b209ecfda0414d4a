import { HubError } from '../base/errors.js';

/**
 * Read a secret (a setup code) from standard input: from a pipe, the first line; from a terminal,
 * typed without echo. It never appears in the process list, the shell history or the output.
 */
export async function readSecretFromStdin(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) {
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    return new Promise((resolve, reject) => {
      let value = '';
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') {
            finish();
            resolve(value);
            return;
          }
          if (ch === '\u0003') {
            finish();
            reject(new HubError('cli.cancelled', 'cancelled'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      const finish = () => {
        stdin.off('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write('\n');
      };
      stdin.on('data', onData);
    });
  }
  let text = '';
  stdin.setEncoding('utf8');
  for await (const chunk of stdin) {
    text += chunk as string;
    if (text.includes('\n') || text.length > 256) break;
  }
  const line = text.split(/\r?\n/)[0]?.trim() ?? '';
  if (!line)
    throw new HubError('cli.no-setup-code', 'no setup code on standard input', {
      hint: 'pipe it in, or type it when asked',
    });
  return line;
}
