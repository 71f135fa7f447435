/* init_tree.h: snapshot_directory under gVisor, whose namespaces the host
 * cannot join: init writes the directory's tree into a socket the host sent
 * (protocol.h, PSB_FSOP_TREE), and the host makes the copy from that stream
 * in a helper sandbox (sandbox-untree), never reading it as a host process. */
#if !defined(PSB_INIT_TREE_H)
#define PSB_INIT_TREE_H

#include "init.h"

/* Opens the directory `path` (its error is the reply's), then walks it in a
 * relay of init's that writes the stream into `sock` (-1: none was sent,
 * EINVAL) and exits at its end; replies OK once the relay runs. */
void reply_tree(struct conn *c, const char *path, int sock);

#endif
