"""The database: engine set-up, schema migrations on open, and transactions.

SQLite is the embedded default; PostgreSQL (`postgresql+psycopg://…`) serves several processes.
Writers use `db.write()`, readers `db.read()`: on SQLite a writer takes the write lock when its
transaction begins (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of one of them
failing when it upgrades a read lock; readers never block under WAL.
"""
import collections
import contextlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / 'migrations'
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Serialises migrations of processes that start together against one PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x7265736572766F  # "reservo"
_BEGIN_OPTION = 'sqlite_begin'


class Database:
    def __init__(self, engine):
        self.engine = engine
        self._prepared = {}   # Prepared -> _Compiled for this engine's dialect
        self._readers = sessionmaker(engine, expire_on_commit=False)
        self._writers = sessionmaker(engine.execution_options(**{_BEGIN_OPTION: 'IMMEDIATE'}),
                                     expire_on_commit=False)

    @classmethod
    def open(cls, url):
        """Connect to `url` and bring its schema up to date."""
        engine = create_database_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @contextlib.contextmanager
    def read(self):
        """A session for queries; rolled back at the end."""
        with self._readers() as session:
            yield session

    @contextlib.contextmanager
    def query(self):
        """A plain connection for read-only column queries on hot paths: no ORM session to build."""
        with self.engine.connect() as connection:
            yield connection

    @contextlib.contextmanager
    def prepared(self):
        """A reader of prepared statements (`Prepared`) on one bare DB-API connection and transaction
        (on SQLite one snapshot; PostgreSQL reads committed data statement by statement, as elsewhere).

        For the hottest read paths (the describe calls clients poll): SQLAlchemy builds and compiles
        each statement once; each call then costs a cursor execute instead of SQLAlchemy's
        per-execution machinery, several times cheaper for small results.
        """
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if self.engine.dialect.name == 'sqlite':
                cursor.execute('BEGIN')   # autocommit otherwise: one snapshot for every statement
            yield _PreparedReader(cursor, self.engine.dialect, self._prepared)
            cursor.close()
        finally:
            connection.close()   # back to the pool, which rolls the read transaction back

    @contextlib.contextmanager
    def write(self):
        """A session whose changes are committed if the block succeeds, rolled back if it raises."""
        with self._writers.begin() as session:
            yield session

    def after_fork(self):
        """In a forked child: forget the parent's pooled connections without closing them."""
        self.engine.dispose(close=False)

    def close(self):
        self.engine.dispose()


class Prepared:
    """A SELECT built once (with named `bindparam`s) for `Database.prepared()` to run many times."""

    def __init__(self, statement):
        self.statement = statement
        self.row_type = collections.namedtuple('Row', statement.selected_columns.keys(), rename=True)


class _Compiled:
    """A prepared statement's SQL for one dialect, with its parameter and column conversions."""

    def __init__(self, prepared, dialect):
        compiled = prepared.statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.compiled = compiled
        self.positions = compiled.positiontup if compiled.positional else None
        self.bind_processors = {name: processor for name, bind in compiled.binds.items()
                                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))}
        self.result_processors = [(index, processor) for index, column
                                  in enumerate(prepared.statement.selected_columns)
                                  if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None))]
        self.make_row = prepared.row_type._make

    def parameters(self, values):
        params = self.compiled.construct_params(values)
        for name, processor in self.bind_processors.items():
            params[name] = processor(params[name])
        return params if self.positions is None else [params[name] for name in self.positions]

    def rows(self, raw_rows):
        if not self.result_processors:
            return [self.make_row(row) for row in raw_rows]
        rows = []
        for raw in raw_rows:
            values = list(raw)
            for index, processor in self.result_processors:
                values[index] = processor(values[index])
            rows.append(self.make_row(values))
        return rows


class _PreparedReader:
    def __init__(self, cursor, dialect, cache):
        self._cursor = cursor
        self._dialect = dialect
        self._cache = cache

    def __call__(self, prepared, **values):
        """The rows of `prepared` for these bind values, as named tuples."""
        compiled = self._cache.get(prepared)
        if compiled is None:
            compiled = self._cache[prepared] = _Compiled(prepared, self._dialect)
        self._cursor.execute(compiled.sql, compiled.parameters(values))
        return compiled.rows(self._cursor.fetchall())


def create_database_engine(url):
    url = make_url(url)
    if url.get_backend_name() == 'sqlite':
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url):
    if url.database and url.database != ':memory:':
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, 'connect')
    def configure(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see `begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute('PRAGMA journal_mode=WAL')
        cursor.execute(f'PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}')
        cursor.execute('PRAGMA foreign_keys=ON')
        cursor.execute('PRAGMA synchronous=NORMAL')
        cursor.close()

    @event.listens_for(engine, 'begin')
    def begin(connection):
        mode = connection.get_execution_options().get(_BEGIN_OPTION, 'DEFERRED')
        connection.exec_driver_sql(f'BEGIN {mode}')

    return engine


def migrate(engine):
    """Upgrade the schema to the newest migration, one process at a time."""
    with engine.execution_options(**{_BEGIN_OPTION: 'IMMEDIATE'}).begin() as connection:
        if connection.dialect.name == 'postgresql':
            connection.execute(text('SELECT pg_advisory_xact_lock(:key)'), {'key': _MIGRATION_LOCK_KEY})
        command.upgrade(alembic_config(connection), 'head')


def alembic_config(connection=None):
    """An alembic configuration built in code, so no alembic.ini is needed in the working directory."""
    config = AlembicConfig()
    config.set_main_option('script_location', str(MIGRATIONS_DIR))
    config.attributes['connection'] = connection
    return config
