/* hostile.c: names that try to drive the terminal, for the escaping tests.
 *
 * The thread renames itself to an escape sequence that clears the screen and
 * sets the window title (prctl PR_SET_NAME), then split-locks once at an ELF
 * symbol whose name holds an escape sequence too. Every report of it must
 * show those bytes escaped, and every XML file made from it must parse. */
#include <stdint.h>
#include <sys/prctl.h>

static _Alignas(64) unsigned char buffer[128];

int main(void)
{
    volatile uint64_t *p = (volatile uint64_t *)(buffer + 60);

    prctl(PR_SET_NAME, "\033[2J\033]0;PWN\007", 0, 0, 0);
    __asm__ volatile(".globl \"evil\x1b[31msite\"\n\"evil\x1b[31msite\":\n\tlock btsq $3, %0"
                     : "+m"(*p)
                     :
                     : "memory", "cc");
    return 0;
}
