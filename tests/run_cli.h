/*
 * run_cli.h — runs the netdiffus binary (ND_BINARY) as a person would, for CLI tests:
 * stdin from /dev/null, stdout and stderr captured into out_text and err_text, the exit
 * code returned. EXPECT(code, args...) fails the test with both outputs when the code
 * differs. Include after check.h and ../base/tmpdir.h.
 */
#ifndef ND_RUN_CLI_H
#define ND_RUN_CLI_H

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static char *out_text, *err_text; /* of the last run */

/* Runs the program argv[0] with argv (NULL-terminated), stdin from /dev/null; returns
 * its exit code with stdout and stderr in out_text and err_text. */
static int run_argv(const char *const *argv)
{
    static char out[512], err[512]; /* own copies: tmp_path's ring is reused */
    if (!out[0]) {
        snprintf(out, sizeof out, "%s", tmp_path("stdout"));
        snprintf(err, sizeof err, "%s", tmp_path("stderr"));
    }
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0) _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st))
        CHECK_FAIL_("%s %s: killed by signal %d", argv[0], argv[1] ? argv[1] : "",
                    WTERMSIG(st));
    size_t len;
    free(out_text);
    free(err_text);
    out_text = (char *)read_bytes(out, &len);
    err_text = (char *)read_bytes(err, &len);
    return WEXITSTATUS(st);
}

/* Runs netdiffus with args (NULL-terminated): run_argv. */
static int run_cli(const char *const *args)
{
    const char *argv[40] = {ND_BINARY};
    int n = 1;
    for (; args[n - 1]; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    return run_argv(argv);
}

#define RUN(...) run_cli((const char *const[]){__VA_ARGS__, NULL})
#define EXPECT(code, ...)                                                                      \
    do {                                                                                       \
        int rc_ = RUN(__VA_ARGS__);                                                            \
        if (rc_ != (code))                                                                     \
            CHECK_FAIL_("exit %d, expected %d\nstdout:\n%s\nstderr:\n%s", rc_, (code),         \
                        out_text, err_text);                                                   \
    } while (0)

#endif
