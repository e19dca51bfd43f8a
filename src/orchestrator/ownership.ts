/**
 * Which registrations are switchyard's own. Containers carry the owner label; a
 * registration carries it in its state record's `by`, as `<actor>@<owner>`: the user who
 * scaled (or "reconcile", "restart") stays visible in `status`, and a registration whose
 * container was removed behind our back can still be recognised as ours and cleaned up.
 */
const BY_MAX = 64; // the registry's limit on `by`

export function ownedBy(actor: string, owner: string): string {
  const suffix = `@${owner}`;
  const room = BY_MAX - suffix.length;
  const who = actor
    .replace(/[^\x21-\x7e]/g, '_')
    .replace(/@/g, '_')
    .slice(0, Math.max(1, room));
  return `${who}${suffix}`;
}

export function isOwned(by: string | undefined, owner: string): boolean {
  return by?.endsWith(`@${owner}`) ?? false;
}

/** The actor part of an `ownedBy` value (the whole value for anyone else's). */
export function actorOf(by: string, owner: string): string {
  return isOwned(by, owner) ? by.slice(0, -(owner.length + 1)) : by;
}
