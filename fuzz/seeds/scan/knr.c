/* K&R (old-style) definitions, as old C libraries still have them. */
int add(a, b)
    int a;
    int b;
{
    return a + b;
}

char *
copy(dst, src, n)
    register char *dst;
    const char *src;
    unsigned n;
{
    while (n--)
        *dst++ = *src++;
    return dst;
}

static int
apply(fn, x)
    int (*fn)();
    int x;
{
    return (*fn)(x);
}

long noargs()
{
    return 0L;
}
