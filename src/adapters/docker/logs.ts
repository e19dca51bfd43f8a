/**
 * The last lines a container printed, so "exited with code 1" comes with the reason the
 * program gave. Non-TTY logs are multiplexed: frames of [stream, 0, 0, 0, size(u32 BE)]
 * followed by `size` bytes; stdout and stderr are merged in order.
 */
export function demuxLogs(buf: Buffer): string {
  const parts: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const stream = buf[off];
    const size = buf.readUInt32BE(off + 4);
    // Not a multiplexed stream (a TTY container): the bytes are the text.
    if (stream === undefined || stream > 2 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) {
      return buf.toString('utf8');
    }
    parts.push(buf.subarray(off + 8, off + 8 + size));
    off += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}

export function lastLines(text: string, n: number): string[] {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .slice(-n);
}
