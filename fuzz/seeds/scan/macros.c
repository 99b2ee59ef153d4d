/* Macros in and around definitions, and macros that open and close the blocks of a body. */
#define UNUSED(x) (void)(x)
#define FOR_EACH(i, n) for ((i) = 0; (i) < (n); (i)++)
#define LOCKED(l, body) do { lock(l); body; unlock(l); } while (0)

struct elem { struct elem *next; int v; };
struct list { struct elem *head; };

#define LIST_FOREACH(e, l) for ((e) = (l)->head; (e); (e) = (e)->next) {
#define LIST_END }

static int counter;

static int count_to(int n)
{
  int i;
  FOR_EACH(i, n) {
    LOCKED(&g_lock, { counter++; });
  }
  return counter;
}

int list_total(struct list *l)
{
  struct elem *e;
  int total = 0;
  LIST_FOREACH(e, l)
    total += e->v;
  LIST_END
  return total;
}

__attribute__((unused)) static int attributed(int x)
{
  UNUSED(x);
  return 0;
}

static inline int inlined(int x) { return x * 2; }

int after_macros(void)
{
  return count_to(3) + attributed(1) + inlined(2);
}
