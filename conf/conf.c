/* conf.c — to be written. */
