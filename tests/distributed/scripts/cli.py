"""`python -m tinyinception ARGS...` as a script, so that the MPI tests can start the command under mpiexec."""
import sys

from tinyinception.cli import main

sys.exit(main(sys.argv[1:]))
