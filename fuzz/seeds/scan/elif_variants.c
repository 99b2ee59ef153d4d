/* One function defined once per branch of an #if/#elif/#else chain: each variant is
 * its own definition with its own lines. */
#include <stdint.h>

#if defined(HAVE_CLOCK_GETTIME)
static int64_t now_ms(void)
{
  return clock_ms();
}
#elif defined(HAVE_GETTIMEOFDAY)
static int64_t now_ms(void)
{
  return tod_ms();
}
#else
static int64_t now_ms(void)
{
  return time_s() * 1000;
}
#endif

#ifdef _WIN32
int sock_close(int s)
{
  return closesocket(s);
}
#else
int sock_close(int s)
{
  return close(s);
}
#endif

#if 0
int disabled(void)
{
  return -1;
}
#endif

int uses_now(void)
{
#if defined(A)
  return (int)now_ms();
#elif defined(B)
  return (int)(now_ms() / 2);
#else
  return 0;
#endif
}
