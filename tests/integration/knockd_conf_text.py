# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knockd.conf text for the daemon tests, written the way the examples write it.

    section('options', 'LogFile = {log}')                  # a line given as text stays as it is
    section('ssh', sequence='7313,4187,9421', seq_timeout=5, tcpflags='syn', start_command='...')
    -> '[ssh]\\n    sequence    = 7313,4187,9421\\n    seq_timeout = 5\\n    tcpflags    = syn\\n...'

Directives keep the order they are given in; keys are padded to 11 columns (``sequence    =``,
``cmd_timeout =``, ``start_command =``).  Sections are joined by a blank line with ``conf()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def section(name, *lines, **directives):
    text = ['[%s]' % name] + ['    ' + line for line in lines]
    text += ['    %-11s = %s' % (key, value) for key, value in directives.items()]
    return '\n'.join(text) + '\n'


def conf(*sections):
    return '\n'.join(sections)
