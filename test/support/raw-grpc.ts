/**
 * gRPC requests written by hand on raw HTTP/2 (any bytes, any headers), and the answer as it came: for comparing
 * what two servers, or two paths of one, answer to the same bytes.
 */
import * as http2 from 'node:http2';

export interface RawAnswer {
  headers: Record<string, unknown>;
  data: Buffer;
  trailers: Record<string, unknown>;
}

/** One request on its own stream: the given body bytes (gRPC frames or not), the answer as it came. */
export function raw(port: number, path: string, body: Buffer, extra: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const st = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    const out: RawAnswer = { headers: {}, data: Buffer.alloc(0), trailers: {} };
    const chunks: Buffer[] = [];
    st.on('response', (h) => (out.headers = Object.fromEntries(Object.entries(h))));
    st.on('trailers', (t) => (out.trailers = Object.fromEntries(Object.entries(t))));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('error', reject);
    st.on('close', () => {
      session.close();
      out.data = Buffer.concat(chunks);
      for (const h of [out.headers, out.trailers]) delete h.date;
      resolve(out);
    });
    st.end(body);
  });
}

export const frame = (msg: Uint8Array, compressed = 0): Buffer => {
  const f = Buffer.alloc(5 + msg.length);
  f[0] = compressed;
  f.writeUInt32BE(msg.length, 1);
  Buffer.from(msg).copy(f, 5);
  return f;
};
