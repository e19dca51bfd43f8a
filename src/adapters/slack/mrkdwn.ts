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

const SLACK_USER = /^[UW][A-Z0-9]{2,}$/;

/** A Slack user ID as an @mention; anything else (a shell user, a role) as escaped text. */
export function mention(user: string): string {
  return SLACK_USER.test(user) ? `<@${user}>` : escapeMrkdwn(user);
}

/** A command line for a code span: escaped, no backticks (they would end the span), bounded. */
export function codeText(text: string): string {
  const t = text.replace(/`/g, "'");
  return escapeMrkdwn(t.length > 500 ? `${t.slice(0, 499)}…` : t);
}
