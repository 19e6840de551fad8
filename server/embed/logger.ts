import * as winston from 'winston';

/** The member's logger: JSON lines on stderr at the level of --log-level. */
export function makeLogger(level: string): winston.Logger {
  const levels: Record<string, string> = { debug: 'debug', info: 'info', warn: 'warn', error: 'error', panic: 'error', fatal: 'error' };
  return winston.createLogger({
    level: levels[level] ?? 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['debug', 'info', 'warn', 'error'] })],
  });
}

