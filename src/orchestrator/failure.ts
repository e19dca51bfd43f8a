import { isSwitchyardError, SwitchyardError } from '../core/errors.js';

/** One instance that could not be started or stopped, and why. */
export interface InstanceFailure {
  instance: string;
  error: SwitchyardError;
}

export function asSwitchyardError(err: unknown): SwitchyardError {
  if (isSwitchyardError(err)) return err;
  return new SwitchyardError('E_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}

/** "web-1a2b3c4d: image … is not present" plus Docker's own lines, indented. */
export function failureLines(failures: readonly InstanceFailure[]): string[] {
  return failures.flatMap((f) => [`${f.instance}: ${f.error.message}`, ...f.error.details.map((d) => `    ${d}`)]);
}
