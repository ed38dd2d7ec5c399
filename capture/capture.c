/* capture.c — to be written. */
