/* caps.h: what sandbox root may do in its own user namespace.
 *
 * The runner leaves sandbox root Docker's default capabilities (layout.py's
 * SANDBOX_ROOT_CAPS, which tests/unit/native/test_native_contracts.py compares with
 * CAPS_KEPT here): su, setpriv, apt dropping to _apt and chown work.  Init
 * makes sure of the rest under either runner: nothing else in the bounding
 * set, so no process of the sandbox can ever hold another capability, and no
 * ambient or inheritable ones. */
#if !defined(PSB_CAPS_H)
#define PSB_CAPS_H

/* Dies if the bounding set cannot be narrowed. */
void caps_limit(void);

#endif
