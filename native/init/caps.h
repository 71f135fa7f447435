/* caps.h: what sandbox root may do in its own user namespace.
 *
 * The runner leaves sandbox root Docker's default capabilities (layout.py's
 * SANDBOX_ROOT_CAPS, which tests/unit/native/test_native_contracts.py compares with
 * CAPS_KEPT here): su, setpriv, apt dropping to _apt and chown work.  Init
 * makes sure of the rest under either runner: nothing else in the bounding
 * set, so no process of the sandbox can ever hold another capability, and no
 * ambient or inheritable ones; and init itself holds none other from then on.
 *
 * Under bwrap init also starts with CAP_SYS_ADMIN (runtime/bwrap.py), whose --dev
 * mounts the sandbox's devpts without max=: all non-initial devpts instances share
 * one pool of terminals (kernel.pty.max less kernel.pty.reserve), which one sandbox
 * could otherwise take whole.  caps_bound_ptys remounts it with the options
 * runtime/ptys.py makes (--devpts-options, max= among them), then
 * caps_limit drops CAP_SYS_ADMIN, both before anything of the sandbox runs or
 * any request is served (main). */
#if !defined(PSB_CAPS_H)
#define PSB_CAPS_H

/* Init's bounds on --devpts-options: its length with the NUL, and max= (the kernel's NR_UNIX98_PTY_MAX). */
#define CAPS_DEVPTS_OPTIONS_MAX 128
#define CAPS_PTYS_MAX (1ul << 20)

/* Dies if its own sets or the bounding set cannot be narrowed. */
void caps_limit(void);

/* NULL if OPTIONS are devpts options init uses as they are (caps.c's DEVPTS_KEYS, max= among
 * them), else why not. */
const char *caps_devpts_refused(const char *options);

/* Remounts /dev/pts with OPTIONS (checked by caps_devpts_refused); dies if it cannot. */
void caps_bound_ptys(const char *options);

#endif
