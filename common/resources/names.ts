// Naming rules every layer checks the same way.

/**
 * An RFC 1123 DNS label: 1 to 63 lowercase letters, digits and "-", starting and ending with a
 * letter or digit. Service, stack, node and member names are DNS labels: they become names on the
 * overlay's DNS and parts of host names. (No `g` flag: the regex keeps no state between tests.)
 */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * An RFC 1123 host name: DNS labels (either case) joined by ".". Its length, at most
 * MAX_DNS_NAME_LENGTH, is checked apart so that each check can say what was wrong.
 */
export const DNS_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/** The longest host name DNS allows, in characters. */
export const MAX_DNS_NAME_LENGTH = 253;
