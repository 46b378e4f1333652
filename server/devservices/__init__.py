"""Throwaway etcd, MariaDB and configcenter processes on loopback for tests, scripts, benches."""

from server.devservices.etcd import EtcdCluster
from server.devservices.mariadb import MariaDBServer
from server.devservices.process import (
    DEFAULT_ADMIN_PASSWORD,
    ETCD_BIN,
    LOOPBACK,
    MARIADB_INSTALL_DB_BIN,
    MARIADBD_BIN,
    REPO_ROOT,
    free_port,
)
from server.devservices.server_process import ServerProcess

__all__ = [
    "DEFAULT_ADMIN_PASSWORD",
    "ETCD_BIN",
    "LOOPBACK",
    "MARIADBD_BIN",
    "MARIADB_INSTALL_DB_BIN",
    "REPO_ROOT",
    "EtcdCluster",
    "MariaDBServer",
    "ServerProcess",
    "free_port",
]
