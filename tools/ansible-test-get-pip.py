"""Stand-in for the get-pip.py that ansible-test downloads from a host this machine cannot reach.

ansible-test runs it in a fresh venv as `python get-pip.py [pip options] pip==X ...`.
We bootstrap pip with the interpreter's own ensurepip, then let pip install what was asked
(from PyPI, which is reachable).
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
if args:
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
