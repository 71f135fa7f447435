/* rmtree.h: removing what a sandbox left behind. */
#if !defined(PSB_RMTREE_H)
#define PSB_RMTREE_H

/* Removes path: unlinks a non-directory, removes a directory recursively
 * without following symlinks or crossing into other mounts.  A missing path
 * is fine.  Reports the first failure on stderr and returns -1, or 0. */
int rmtree(const char *path);

/* The same for `path` relative to the directory dfd (the last component is
 * never followed either). */
int rmtree_at(int dfd, const char *path);

#endif
