export { OPTIONS, OPTIONS_BY_NAME, IGNORED_OPTIONS, envName } from './options';
export type { OptionSpec, OptionKind } from './options';
export { ConfigError, parseConfig, parseInitialCluster, checkURL, urlProblem, helpText } from './parse';
export type { ServerConfig, InitialMember, TLSFiles, ParseResult, OptionValue } from './parse';
