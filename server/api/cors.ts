/**
 * etcd's --cors: on every client-listener answer, the CORS headers, with Access-Control-Allow-Origin `*` when all
 * origins are allowed (the default) or the request's own Origin when it is on the list (nothing for another origin);
 * and every OPTIONS request answered 200, empty, before any handler (embed/serve.go's accessController).
 */
import type * as http from 'node:http';

const ALLOW_METHODS = 'POST, GET, OPTIONS, PUT, DELETE';
const ALLOW_HEADERS = 'accept, content-type, authorization';
const ALL_LINES = `Access-Control-Allow-Methods: ${ALLOW_METHODS}\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: ${ALLOW_HEADERS}\r\n`;

export class CorsPolicy {
  private readonly origins: Set<string>;
  private readonly allowsAll: boolean;

  /** An empty list or one holding "*" allows every origin. */
  constructor(origins: readonly string[]) {
    this.origins = new Set(origins);
    this.allowsAll = this.origins.size === 0 || this.origins.has('*');
  }

  /**
   * The CORS header lines for a request with this Origin, as `apply` sets them, serialized as Node's server writes
   * them (for the plain HTTP/1.1 path, server/embed/fast-http1.ts).
   */
  headerLines(origin: string | undefined): string {
    if (this.allowsAll) return ALL_LINES;
    if (origin === undefined || !this.origins.has(origin)) return '';
    return `Access-Control-Allow-Methods: ${ALLOW_METHODS}\r\nAccess-Control-Allow-Origin: ${origin}\r\nAccess-Control-Allow-Headers: ${ALLOW_HEADERS}\r\n`;
  }

  /** Sets the CORS headers for this request; true when it was an OPTIONS request, now answered. */
  apply(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    let origin: string | undefined;
    if (this.allowsAll) origin = '*';
    else {
      const o = req.headers.origin;
      if (o !== undefined && this.origins.has(o)) origin = o;
    }
    if (origin !== undefined) {
      res.setHeader('Access-Control-Allow-Methods', ALLOW_METHODS);
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
    }
    if (req.method !== 'OPTIONS') return false;
    req.resume();
    res.writeHead(200, { 'Content-Length': '0' });
    res.end();
    return true;
  }
}
