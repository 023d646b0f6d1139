"""The lab tool's parts (lab/pklab.py is its command line): one concept per file.

podman.py   the one way to run podman (lab/lab-podman: the lab's pinned containers.conf)
image.py    the Debian 12 base image (debootstrap, cached)
network.py  the shared lab network, its routes, and the guards that keep test traffic on the machine
proxy.py    the apt-cacher-ng the hosts fetch packages through
labs.py     labs of hosts: up, down, records, inventories
"""
