"""Where the lab keeps its files (.lab/, or $PKLAB_STATE) and the lock that serialises calls."""

import fcntl
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        fh.write(text)
    os.chmod(path, mode)


class Lock:
    """Serialises pklab invocations (molecule and tests may run it concurrently)."""

    def __enter__(self):
        os.makedirs(STATE, exist_ok=True)
        self.fh = open(os.path.join(STATE, '.lock'), 'w')
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()
