/* seccomp.h: the syscall filter every sandbox process runs under. */
#if !defined(PSB_SECCOMP_H)
#define PSB_SECCOMP_H

/* Sets no_new_privs and installs the filter on every thread of the caller;
 * children and exec'd programs inherit it and cannot remove it.  Returns 0
 * or -1 with errno set. */
int seccomp_install(void);

#endif
