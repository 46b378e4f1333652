"""Throwaway etcd, MariaDB, nginx and configcenter processes on loopback for tests and scripts."""

from devservices.etcd import EtcdCluster
from devservices.mariadb import MariaDBServer
from devservices.nginx import NginxProxy
from devservices.process import (
    DEFAULT_ADMIN_PASSWORD,
    ETCD_BIN,
    LOOPBACK,
    MARIADB_INSTALL_DB_BIN,
    MARIADBD_BIN,
    REPO_ROOT,
    children_of,
    free_port,
)
from devservices.server_process import ServerProcess

__all__ = [
    "DEFAULT_ADMIN_PASSWORD",
    "ETCD_BIN",
    "LOOPBACK",
    "MARIADBD_BIN",
    "MARIADB_INSTALL_DB_BIN",
    "REPO_ROOT",
    "EtcdCluster",
    "MariaDBServer",
    "NginxProxy",
    "ServerProcess",
    "children_of",
    "free_port",
]
