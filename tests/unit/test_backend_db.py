import datetime
import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, inspect, select
from sqlalchemy.exc import IntegrityError

from backend.db import Database, Prepared, alembic_config
from backend.models import Image, KeyPair, LaunchPermission, User, utcnow
from tests.support.postgres import fresh_database


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


# -- prepared statements: the same on the embedded and the scale-out database ----------------------

@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def any_db(request, db_path):
    if request.param == 'sqlite':
        database = Database.open(f'sqlite:///{db_path}')
        yield database
        database.close()
        return
    with fresh_database() as url:
        database = Database.open(url)
        yield database
        database.close()


_USERS_SINCE = Prepared(select(User.name, User.created_at.label('joined'))
                        .where(User.created_at >= bindparam('since', type_=User.created_at.type),
                               User.name != 'hidden')
                        .order_by(User.name))


def _add_users(db, *names_and_times):
    with db.write() as session:
        for name, created in names_and_times:
            account_id = str(int.from_bytes(name.encode(), 'big') % 10 ** 12).zfill(12)
            session.add(User(name=name, account_id=account_id, created_at=created))


def test_prepared_statements_convert_parameters_and_columns_by_their_types(any_db):
    now = utcnow()
    _add_users(any_db, ('old', now - datetime.timedelta(days=2)), ('new', now), ('hidden', now),
               ('newer', now + datetime.timedelta(seconds=1)))
    with any_db.prepared() as read:
        rows = read(_USERS_SINCE, since=now - datetime.timedelta(days=1))
    assert [(row.name, row.joined) for row in rows] == [('new', now), ('newer', now + datetime.timedelta(seconds=1))]
    assert all(row.joined.tzinfo == datetime.timezone.utc for row in rows)


def test_a_prepared_reader_on_sqlite_sees_one_snapshot(db):
    now = utcnow()
    _add_users(db, ('first', now))
    with db.prepared() as read:
        before = read(_USERS_SINCE, since=now)
        _add_users(db, ('second', now))   # committed by another connection meanwhile
        during = read(_USERS_SINCE, since=now)
    with db.prepared() as read:
        after = read(_USERS_SINCE, since=now)
    assert [row.name for row in before] == [row.name for row in during] == ['first']
    assert [row.name for row in after] == ['first', 'second']


def test_upgrading_gives_each_network_a_shared_vpc_and_each_instance_an_eth0_interface(tmp_path):
    import sqlalchemy
    from alembic import command
    engine = sqlalchemy.create_engine(f'sqlite:///{tmp_path / "old.db"}')
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), '0005_quotas')
        now = datetime.datetime(2026, 1, 1)
        connection.execute(sqlalchemy.text(
            "INSERT INTO networks (id, name, subnet_id, kind, cidr, gateway, is_default, cursor, created_at) "
            "VALUES (1, 'default', 'subnet-0000000000000000a', 'private', '10.0.0.0/20', '10.0.0.1', 1, 5, :now),"
            "       (2, 'public', 'subnet-0000000000000000b', 'public', '192.0.2.0/24', NULL, 0, 0, :now)"),
            {'now': now})
        connection.execute(sqlalchemy.text(
            "INSERT INTO instances (instance_id, reservation_id, owner, image_id, instance_type, vcpus, memory_mib, "
            "state, zone, network_id, private_ip, mac, ami_launch_index, launch_time, state_changed_at, attempts) "
            "VALUES ('i-0000000000000000a', 'r-0000000000000000a', '123456789012', 'ami-0000000000000000a', "
            "'t1.micro', 1, 256, 'running', 'reservoir-1a', 1, '10.0.0.5', '02:00:0a:00:00:05', 0, :now, :now, 0)"),
            {'now': now})
        connection.execute(sqlalchemy.text(
            "INSERT INTO leases (id, network_id, address, mac, instance_id) VALUES (1, 1, 167772165, "
            "'02:00:0a:00:00:05', 'i-0000000000000000a'), (2, 1, 167772166, '02:00:0a:00:00:06', 'i-0000000000000000b')"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), 'head')
        rows = connection.execute(sqlalchemy.text(
            'SELECT n.name, n.owner, n.is_default, v.vpc_id, v.shared, v.owner, v.cidr FROM networks n '
            'LEFT JOIN vpcs v ON v.id = n.vpc_pk ORDER BY n.id')).all()
        lease = connection.execute(sqlalchemy.text('SELECT network_id, address, mac, interface_id FROM leases')).one()
        interface = connection.execute(sqlalchemy.text(
            'SELECT interface_id, owner, instance_id, device_index, mac, delete_on_termination, attachment_status '
            'FROM network_interfaces')).one()
    (name, owner, is_default, vpc_id, shared, vpc_owner, cidr), public = rows
    assert (name, owner, is_default, shared, vpc_owner, cidr) == ('default', '000000000000', False, True,
                                                                  '000000000000', '10.0.0.0/20')
    assert vpc_id.startswith('vpc-') and public[3] is None
    # The instance's lease became its eth0; the orphan lease held nothing and went.
    assert tuple(lease) == (1, 167772165, '02:00:0a:00:00:05', interface[0])
    assert tuple(interface[1:]) == ('123456789012', 'i-0000000000000000a', 0, '02:00:0a:00:00:05', True, 'attached')
