// Server-sent events from a fetch() body. EventSource cannot send an Authorization header, so
// the stream is read by hand here, following the WHATWG event-stream rules: lines end in CR,
// LF or CRLF (even when a chunk boundary falls between CR and LF), `data:` lines of one event
// are joined with LF, comments and other fields are ignored, and a blank line ends the event.

/** Yields the `data` of each event of `body` (a ReadableStream of bytes). */
export async function* sseData(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  let buffer = '';
  let data = [];
  let skipLf = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (skipLf) {
          skipLf = false;
          if (c === '\n') {
            start = i + 1;
            continue;
          }
        }
        if (c !== '\n' && c !== '\r') continue;
        const line = buffer.slice(start, i);
        start = i + 1;
        if (c === '\r') skipLf = true;
        if (line === '') {
          if (data.length) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(line[5] === ' ' ? 6 : 5));
        }
      }
      buffer = buffer.slice(start);
    }
    // A stream that ends without a final blank line drops its unfinished event (the rules).
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // The consumer may stop early (after [DONE], or on Stop): let go of the connection.
    reader.cancel().catch(() => {});
  }
}
