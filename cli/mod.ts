/**
 * The `pg-rdma` command line as a library: run it in-process ({@linkcode main}), reuse its
 * progress reporter and password prompt in your own tools, or run the RDMA host checks of
 * `pg-rdma doctor` ({@linkcode diagnose}) and read the report.
 *
 * @example
 * ```ts
 * import { diagnose } from "./cli/mod.ts";
 * const report = diagnose();
 * console.log(report.usable ? "RDMA usable" : report.verdict);
 * ```
 *
 * @module
 */
export {
  type Command,
  type CommandContext,
  EXIT,
  main,
  type MainOptions,
  UsageError,
} from "./main.ts";
export { COMMANDS } from "./_commands.ts";
export {
  createProgress,
  formatBytes,
  formatDuration,
  type Progress,
  type ProgressOptions,
  type ProgressStream,
} from "./_progress.ts";
export { type PromptInput, type PromptOptions, promptPassword } from "./_prompt.ts";
export {
  type CheckStatus,
  diagnose,
  type DiagnoseOptions,
  type DoctorCheck,
  type DoctorReport,
  formatReport,
  rdmaCoreVersion,
  RSOCKET_DEFAULTS,
} from "./doctor.ts";
