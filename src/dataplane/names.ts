/**
 * The shapes of link-level names, shared by the switch, the CNI plugin and the test worlds. No
 * addon is loaded here: the plugin and the test kit use these without the data plane.
 */

/** IFNAMSIZ - 1 (include/uapi/linux/if.h): the longest interface name the kernel takes. */
export const IFNAME_MAX = 15;

/** Interface names the project creates: characters every tool takes unquoted. */
export const IFNAME_RE = /^[A-Za-z0-9_.-]*$/;

/** A MAC address as the project writes it: six colon-separated hex bytes. */
export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
