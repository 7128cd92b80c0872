/* movecases.c: short locked ops laid out by hand, for the rules of what may
 * move with one into its stub (run/trace/moved.py). Not meant to run. */
void mv_free(int *p);      /* lock incl (%rdi); mov %esi,%eax; ret: the mov may move */
void mv_target(int *p);    /* the mov after it is a branch target: nothing moves */
void mv_table(int *p);     /* the function jumps through a register: nothing moves */
void mv_jcc(int *p);       /* lock cmpxchg; jne back: the jne moves, re-aimed */
void mv_call(int *p);      /* a call follows it: nothing moves */
__asm__(
    ".text\n"
    ".globl mv_free\n.type mv_free,@function\nmv_free:\n"
    "  lock incl (%rdi)\n  mov %esi, %eax\n  add $1, %eax\n  ret\n.size mv_free, .-mv_free\n"
    ".globl mv_target\n.type mv_target,@function\nmv_target:\n"
    "  test %esi, %esi\n  jnz 1f\n  lock incl (%rdi)\n1: mov %esi, %eax\n  add $1, %eax\n  ret\n"
    ".size mv_target, .-mv_target\n"
    ".globl mv_table\n.type mv_table,@function\nmv_table:\n"
    "  lock incl (%rdi)\n  mov %esi, %eax\n  add $1, %eax\n  jmp *%rdx\n"
    ".size mv_table, .-mv_table\n"
    ".globl mv_jcc\n.type mv_jcc,@function\nmv_jcc:\n"
    "1: mov (%rdi), %eax\n  lea 1(%rax), %edx\n  lock cmpxchg %edx, (%rdi)\n  jne 1b\n  ret\n"
    ".size mv_jcc, .-mv_jcc\n"
    ".globl mv_call\n.type mv_call,@function\nmv_call:\n"
    "  lock incl (%rdi)\n  call mv_free\n  ret\n.size mv_call, .-mv_call\n");

int main(void)
{
    return 0;
}
