/* replay.c — to be written. */
