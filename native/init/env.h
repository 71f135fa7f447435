/* env.h: the environment of an exec'd process. */
#if !defined(PSB_ENV_H)
#define PSB_ENV_H

/* A new NULL-terminated vector: every "KEY=VALUE" of `base` whose KEY is not
 * set in `over`, then all of `over`.  The strings are shared, not copied;
 * free() only the vector.  NULL when out of memory. */
char **env_overlay(char *const *base, char *const *over);

/* The value of KEY in a "KEY=VALUE" vector, or NULL. */
const char *env_get(char *const *env, const char *key);

#endif
