/* setuidcheck.c: exits 0 when it runs with root's privileges, 42 when not.
 * Installed set-user-ID root, it tells whether a tracer dropped them. */
#include <unistd.h>

int main(void)
{
    return geteuid() == 0 ? 0 : 42;
}
