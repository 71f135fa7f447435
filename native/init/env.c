/* env.c: an exec'd process gets init's own environment (the sandbox's: it
 * carries create()'s env= and secrets=, which no record on the host keeps)
 * with the request's variables layered on top.  So a client in any process
 * only has to send what exec() itself adds. */
#include "env.h"

#include <stdlib.h> /* malloc */
#include <string.h> /* strchrnul, strncmp, strlen */

static size_t key_len(const char *entry)
{
  return (size_t)(strchrnul(entry, '=') - entry);
}

static int overridden(const char *entry, char *const *over)
{
  size_t n = key_len(entry);
  for (; *over != NULL; over++)
    if (key_len(*over) == n && strncmp(*over, entry, n) == 0)
      return 1;
  return 0;
}

char **env_overlay(char *const *base, char *const *over)
{
  size_t nbase = 0, nover = 0;
  while (base[nbase] != NULL)
    nbase++;
  while (over[nover] != NULL)
    nover++;
  char **env = malloc((nbase + nover + 1) * sizeof *env);
  if (env == NULL)
    return NULL;
  size_t n = 0;
  for (size_t i = 0; i < nbase; i++)
    if (!overridden(base[i], over))
      env[n++] = base[i];
  for (size_t i = 0; i < nover; i++)
    env[n++] = over[i];
  env[n] = NULL;
  return env;
}

const char *env_get(char *const *env, const char *key)
{
  size_t n = strlen(key);
  for (; *env != NULL; env++)
    if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
      return *env + n + 1;
  return NULL;
}
