/**
 * Slack mrkdwn treats `<…>` as control sequences (links, @mentions, <!channel>) and `&` as
 * the start of an entity, so these three — and only these, per Slack's escaping rules — must
 * be escaped in anything user- or system-supplied. `&` goes first so the entities produced
 * for `<` and `>` are not escaped twice.
 */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The inverse, for text Slack sends us (message and command text arrive escaped). */
export function unescapeMrkdwn(s: string): string {
  // `&amp;` last, so `&amp;lt;` (a user literally typing "&lt;") decodes to "&lt;", not "<".
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
