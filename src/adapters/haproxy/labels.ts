/** How servers are named in change lists ("+web-4", "-api/a1", "web-3 drain"). */

/**
 * Instances are usually named after their service (web-4 in web), so the instance alone is
 * unambiguous and reads best in the feed; otherwise the service is spelt out.
 */
export function serverLabel(service: string, instance: string): string {
  return instance.startsWith(service) ? instance : `${service}/${instance}`;
}
