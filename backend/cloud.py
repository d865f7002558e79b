"""The VM manager as one object: configuration, database and the services built on them."""
from .catalog import Catalog
from .config import load_config
from .db import Database
from .images import ImageRepository, ImageService
from .keypairs import KeyPairService
from .users import UserService
from .vault import Vault


class Cloud:
    def __init__(self, config, db):
        self.config = config
        self.db = db
        self.vault = Vault(config.secret_key_path)
        self.users = UserService(db, self.vault)
        self.keypairs = KeyPairService(db)
        self.images = ImageService(db, ImageRepository(config.images_dir))
        self.catalog = Catalog(config)

    @classmethod
    def open(cls, config=None):
        """Open the cloud described by `config` (default: the environment's), migrating its database."""
        config = config or load_config()
        # The state directory holds the vault key and every image: its owner's alone.
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(config, Database.open(config.database_url))

    def after_fork(self):
        """In a forked worker process: open new database connections instead of sharing the parent's."""
        self.db.after_fork()

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *_exc_info):
        self.close()
