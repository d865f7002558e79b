import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from backend.db import Database, alembic_config
from backend.models import Image, KeyPair, LaunchPermission, User, utcnow


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / 'state' / 'reservoir.db'


@pytest.fixture
def db(db_path):
    database = Database.open(f'sqlite:///{db_path}')
    yield database
    database.close()


def test_open_creates_every_table_at_the_newest_revision(db):
    tables = set(inspect(db.engine).get_table_names())
    assert {'users', 'access_keys', 'key_pairs', 'images', 'launch_permissions', 'alembic_version'} <= tables
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert current is not None


def test_migrations_match_the_models(db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={'compare_type': True})
        assert compare_metadata(context, User.metadata) == []


def test_reopening_is_harmless(db_path, db):
    with db.write() as session:
        session.add(User(name='kept', account_id='123456789012'))
    again = Database.open(f'sqlite:///{db_path}')
    with again.read() as session:
        assert session.scalar(select(User.name)) == 'kept'
    again.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db, db_path):
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql('PRAGMA foreign_keys').scalar() == 1
        assert connection.exec_driver_sql('PRAGMA busy_timeout').scalar() > 0
    assert sqlite3.connect(db_path).execute('PRAGMA journal_mode').fetchone()[0] == 'wal'


def test_write_rolls_back_when_the_block_fails(db):
    with pytest.raises(RuntimeError):
        with db.write() as session:
            session.add(User(name='ghost', account_id='123456789012'))
            session.flush()
            raise RuntimeError('abandon')
    with db.read() as session:
        assert session.scalar(select(User)) is None


def test_key_pairs_go_with_their_account(db):
    with db.write() as session:
        session.add(User(name='owner', account_id='123456789012'))
    with db.write() as session:
        session.add(KeyPair(key_pair_id='key-0123456789abcdef0', owner='123456789012', name='k',
                            key_type='rsa', fingerprint='f', public_key='ssh-rsa AAAA k'))
    with db.write() as session:
        session.delete(session.scalar(select(User)))
    with db.read() as session:
        assert session.scalar(select(KeyPair)) is None


def _image(image_id, name='same', state='available'):
    return Image(image_id=image_id, owner='123456789012', name=name, image_type='machine', state=state,
                 public=False, architecture='x86_64', disk_format='qcow2', created_at=utcnow())


def test_image_names_are_unique_per_owner_until_deregistered(db):
    with db.write() as session:
        session.add(_image('ami-00000000000000001', state='deregistered'))
        session.add(_image('ami-00000000000000002'))
    with pytest.raises(IntegrityError):
        with db.write() as session:
            session.add(_image('ami-00000000000000003'))


def test_launch_permissions_are_unique_and_go_with_their_image(db):
    with db.write() as session:
        session.add(_image('ami-00000000000000001'))
        session.add(LaunchPermission(image_id='ami-00000000000000001', account_id='210987654321'))
    with pytest.raises(IntegrityError):
        with db.write() as session:
            session.add(LaunchPermission(image_id='ami-00000000000000001', account_id='210987654321'))
    with db.write() as session:
        session.delete(session.get(Image, 'ami-00000000000000001'))
    with db.read() as session:
        assert session.scalar(select(LaunchPermission)) is None


def test_timestamps_come_back_in_utc(db):
    created = utcnow()
    with db.write() as session:
        session.add(User(name='clock', account_id='123456789012', created_at=created))
    with db.read() as session:
        assert session.scalar(select(User.created_at)) == created
