/*
 * test_live_distill.c — `netdiffus live` with live.distill: settings that cannot work
 * are refused before anything runs; a run distils a 2-step student from its checkpoint
 * at the live.distill_every step, one student step after each of the model's, writes it
 * (calibrated) to live.student, hands it to the replay thread, and drops the next,
 * unfinished one at the end, saying so; the student samples as an ordinary model.
 */
#include <sys/stat.h>

#include "live_test.h"

static char nd[1024];

static int run_nd(const char *args)
{
    return test_sh("%s %s >>%s 2>&1", nd, args, tmp_path("log.txt"));
}

int main(void)
{
    snprintf(nd, sizeof nd, "%s", ND_BINARY);
    live_files f;
    live_files_make(&f);
    char stats[512], student[512], out[512], a[4096];
    LIVE_PATH(stats, "s.jsonl");
    LIVE_PATH(student, "st/student.ndm"); /* its folder is made */
    LIVE_PATH(out, "replay.pcap");
    struct stat st;

    /* refused: steps that do not halve, an eps model, the checkpoint's own file */
    snprintf(a, sizeof a, "live -c %s --set live.distill=3 --set model.prediction=v", f.conf);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --set live.distill=2", f.conf);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a,
             "live -c %s --set live.distill=2 --set model.prediction=v --set live.student=%s",
             f.conf, f.ckpt);
    CHECK_EQ(run_nd(a), 2);
    char *said = live_text(tmp_path("log.txt"));
    CHECK_CONTAINS(said, "live.distill_from 64: expected live.distill (3) times 2, 4, 8");
    CHECK_CONTAINS(said, "live.distill: distillation needs model.prediction: v");
    CHECK_CONTAINS(said, "is live.checkpoint too");
    free(said);
    CHECK(stat(f.ckpt, &st) != 0); /* nothing ran */

    /* checkpoints every 50 steps (and not by time: the steps the students start at are
     * the test's, however slow the machine); a student of the one at step 50 (2 rounds of 20
     * steps: done at model step 90), the next one from step 100 is not done by step 120 */
    snprintf(a, sizeof a,
             "live -c %s --speed 0 --steps 120 --stats %s --set model.prediction=v "
             "--set live.distill=2 --set live.distill_from=8 --set live.distill_round_steps=20 "
             "--set live.distill_every=50 --set live.checkpoint_interval=0s "
             "--set live.student=%s --set live.replay=true "
             "--set replay.flows=2 --replay-to pcap:%s",
             f.conf, stats, student, out);
    if (run_nd(a)) CHECK_FAIL_("live failed; log:\n%s", live_text(tmp_path("log.txt")));
    const char *l = live_last_line(stats);
    CHECK_CONTAINS(l, "\"final\":true");
    CHECK_EQ(live_json(l, "step"), 120);
    CHECK_EQ(live_json(l, "students"), 1);
    CHECK_EQ(live_json(l, "student_steps"), 0); /* the unfinished one was dropped */
    said = live_text(tmp_path("log.txt"));
    CHECK_CONTAINS(said, "distilling the checkpoint at step 50 (ddim 10 steps");
    CHECK_CONTAINS(said, "student of the checkpoint at step 50 (2 steps) ->");
    CHECK_CONTAINS(said, "the student of the checkpoint at step 100 was not finished "
                         "(20 of 40 steps): dropped");
    CHECK_CONTAINS(said, "1 students written");
    free(said);

    /* the student: made from the checkpoint at step 50 in 2 rounds, calibrated, and an
     * ordinary model to sample */
    snprintf(a, sizeof a,
             "inspect %s | grep -q 'distilled: from step 50 of the teacher (ddim 10 steps, "
             "guidance 1), DDIM 8 -> 2 steps in 2 rounds of 20 steps'",
             student);
    CHECK_EQ(run_nd(a), 0);
    snprintf(a, sizeof a, "inspect %s | grep -q 'decode calibration: .* (ddim 2 steps'",
             student);
    CHECK_EQ(run_nd(a), 0);
    snprintf(a, sizeof a, "sample %s --count 4 --csv %s", student, tmp_path("s.csv"));
    CHECK_EQ(run_nd(a), 0);
    CHECK(stat(tmp_path("s.csv"), &st) == 0 && st.st_size > 0);
    CHECK(stat(out, &st) == 0 && st.st_size > 24); /* replay wrote packets */
    return 0;
}
