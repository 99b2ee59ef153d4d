#include <string.h>

/* A comment with a brace { that is not code. */
static int copy_name(char *dst, const char *src)
{
    strcpy(dst, src);
    return 0;
}

int checked_get(const int *a, int len, int i)
{
    const char *s = "}";
    if (i < 0 || i >= len) {
        return -1;
    }
    return a[i] + (s[0] == '}');
}
