// The oldest Node.js switchyard runs on; package.json `engines` says the same (a test keeps
// them equal). Older releases fail while importing dependencies, with errors that name
// neither switchyard nor the fix, so the launcher asks first. No imports: it must load on
// any Node.js that can parse ES modules.
export const MIN_NODE = Object.freeze({ major: 20, minor: 18 });

/** Why this Node.js cannot run switchyard (a sentence for stderr), or undefined when it can. */
export function nodeVersionProblem(version) {
  const [major, minor] = String(version).replace(/^v/, '').split('.').map(Number);
  if (major > MIN_NODE.major || (major === MIN_NODE.major && minor >= MIN_NODE.minor)) return undefined;
  return `switchyard needs Node.js >= ${MIN_NODE.major}.${MIN_NODE.minor} (this is ${version})`;
}
