#if A
int f(void) {
#else
int f(int x) {
#endif
  return 0;
}
#endif
#else
