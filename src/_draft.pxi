# draft backend core: filled in by the draft-kernel issue
