"""A swarm of docker-in-docker nodes on this host: the node image and cluster.py."""
