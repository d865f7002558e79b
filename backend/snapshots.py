"""CreateImage: an instance's disk saved as a new private machine image.

The request side (`SnapshotService`, in whichever process serves the API) checks the instance,
registers the image `pending` under its name, and leaves a job file in `<state dir>/image-jobs/`.
The worker that drives the instance's host (`Snapshotter`) carries the job out, since only it may
touch the domain; a job file outlives crashes, so an image never stays pending for good.

The host's driver flattens the instance's disk into one standalone qcow2 (for libvirt hosts:
overlay and backing image through `qemu-img convert`, with EC2's consistency: a stopped instance as
it is, NoReboot paused and resumed, otherwise shut down cleanly and started again), written next to
the repository and renamed into it once checked, so no half-written image is ever seen.
The image launches with the instance's kernel and ramdisk.
"""
import dataclasses
import json
import logging
import os
import threading
from pathlib import Path

from sqlalchemy import select

from .drivers.base import DriverError, Feature, SnapshotTarget
from .errors import Conflict, NotFound
from .hosts import require_feature
from .image_lifetimes import check_quota
from .images import ROOT_DEVICE_NAME, Registration, _check_registration, inspect_disk
from .lifecycle import State
from .models import Image as ImageRow, Instance as InstanceRow, Volume as VolumeRow, new_resource_id
from .storage.launch_volumes import ROOT_DEVICES, BlockDevice

log = logging.getLogger(__name__)

JOBS_DIRECTORY = 'image-jobs'
SNAPSHOT_STATES = (State.RUNNING.value, State.STOPPED.value)
# The instance is between states: its job waits for the next round.
BUSY_STATES = (State.PENDING.value, State.REBOOTING.value, State.STOPPING.value, State.IMPAIRED.value)


class SnapshotError(Exception):
    """The instance's disk could not be saved."""


@dataclasses.dataclass(frozen=True)
class Job:
    image_id: str
    instance_id: str
    owner: str
    no_reboot: bool

    @classmethod
    def load(cls, path):
        return cls(**json.loads(Path(path).read_text()))


def jobs_directory(home):
    return Path(home) / JOBS_DIRECTORY


# --- the request ----------------------------------------------------------------------------------

class SnapshotService:
    def __init__(self, db, images, home, wake_workers=None, volume_snapshots=None):
        self.db = db
        self.images = images
        self.volume_snapshots = volume_snapshots      # an EBS-backed instance is imaged by snapshots
        self.jobs = jobs_directory(home)
        self.wake_workers = wake_workers or (lambda: None)

    def create_image(self, owner, instance_id, name, description=None, no_reboot=False):
        """CreateImage: register the image `pending` and queue the copy; returns the image id."""
        with self.db.write() as session:
            instance = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == instance_id,
                                                                InstanceRow.owner == owner))
            if instance is None:
                raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
            if instance.state not in SNAPSHOT_STATES:
                raise Conflict('IncorrectInstanceState', f"The instance '{instance_id}' is not in a state from "
                                                         'which it can be imaged (running or stopped).')
            require_feature(session, instance, Feature.SNAPSHOT, 'save its disk as an image here')
            source = session.get(ImageRow, instance.image_id)
            architecture = source.architecture if source else 'x86_64'
            _check_registration(name, 'machine', description, architecture, instance.kernel_id,
                                instance.ramdisk_id)
            ebs_root = session.scalar(select(VolumeRow.device).where(VolumeRow.instance_id == instance_id,
                                                                     VolumeRow.device.in_(ROOT_DEVICES)))
        if ebs_root is not None:
            return self._create_ebs_image(owner, instance, ebs_root, name, description, architecture)
        with self.db.write() as session:
            image_id = new_resource_id('ami')
            row = ImageRow(image_id=image_id, owner=owner, name=name, description=description,
                           image_type='machine', state='pending', public=False, architecture=architecture,
                           disk_format='qcow2', kernel_id=instance.kernel_id, ramdisk_id=instance.ramdisk_id,
                           root_device_name=ROOT_DEVICE_NAME)
            # The same rules as every other new image: a free name, launchable companions, the quota
            # (the flattened disk is at most the instance's overlay plus its image).
            self.images.check_new_image(session, row)
            check_quota(session, self.images.limits, owner, _expected_size(session, instance))
            session.add(row)
            self._write_job(Job(image_id, instance_id, owner, bool(no_reboot)))
        self.wake_workers()
        return image_id

    def _create_ebs_image(self, owner, instance, root_device, name, description, architecture):
        """An EBS-backed instance: its volumes snapshotted at one instant, and an EBS-backed image of
        them, pending until they are taken (storage.ebs_images.settle_pending)."""
        snapshots = self.volume_snapshots.create_for_instance(
            owner, instance.instance_id, description=f'Created by CreateImage({instance.instance_id}) for {name}')
        with self.db.read() as session:
            attached = {row.volume_id: row for row in session.scalars(select(VolumeRow).where(
                VolumeRow.instance_id == instance.instance_id))}
        devices = [BlockDevice(attached[s.volume_id].device, s.snapshot_id, s.volume_size_gib,
                               attached[s.volume_id].volume_type, attached[s.volume_id].iops,
                               attached[s.volume_id].throughput, attached[s.volume_id].delete_on_termination)
                   for s in snapshots if s.volume_id in attached]
        image = self.images.register_ebs_pending(owner, Registration(
            name=name, description=description, architecture=architecture, kernel_id=instance.kernel_id,
            ramdisk_id=instance.ramdisk_id, root_device_name=root_device), devices)
        self.wake_workers()
        return image.image_id

    def _write_job(self, job):
        self.jobs.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.jobs / f'.{job.image_id}.json'
        partial.write_text(json.dumps(dataclasses.asdict(job)))
        os.replace(partial, self.jobs / f'{job.image_id}.json')

    def failure_reason(self, image_id):
        """Why a failed image failed, or None."""
        with self.db.read() as session:
            image = session.get(ImageRow, image_id)
            return image.state_reason if image is not None and image.state == 'failed' else None


# --- the copy, in the worker ----------------------------------------------------------------------

class Snapshotter:
    """Runs the CreateImage jobs of instances on the hosts a worker drives, one thread per job."""

    def __init__(self, worker):
        self.worker = worker
        self.db = worker.db
        self.jobs = jobs_directory(worker.cloud.config.home)
        self.repository = worker.cloud.images.repository
        self.stop_timeout = worker.settings.stop_timeout_seconds

    def dispatch(self):
        """Start the due jobs; cheap when there are none (one directory listing)."""
        try:
            names = sorted(name for name in os.listdir(self.jobs) if name.endswith('.json') and not name.startswith('.'))
        except FileNotFoundError:
            return
        for name in names:
            try:
                job = Job.load(self.jobs / name)
            except (OSError, ValueError, TypeError) as error:
                log.warning('dropping unreadable CreateImage job %s: %s', name, error)
                (self.jobs / name).unlink(missing_ok=True)
                continue
            host = self._host_of(job)
            if host is not None and self.worker.claim_instance(job.instance_id):
                threading.Thread(target=self._run, args=(job, host), name=f'create-image-{job.image_id}',
                                 daemon=True).start()

    def _host_of(self, job):
        """The owned host of the job's instance, if the job can run now; fails hopeless jobs."""
        with self.db.read() as session:
            instance = session.get(InstanceRow, job.instance_id)
            image = session.get(ImageRow, job.image_id)
        if image is None or image.state != 'pending':
            self._finish(job)                 # deregistered meanwhile: nothing to do
            return None
        if instance is None or instance.state not in SNAPSHOT_STATES + BUSY_STATES:
            self._fail(job, 'the instance is no longer there')
            return None
        if instance.state in BUSY_STATES:
            return None
        return self.worker.driver_of(instance.host_id)

    def _run(self, job, host):
        try:
            self._snapshot(job, host)
        except Exception as error:           # the image fails with the reason; the worker carries on
            log.warning('CreateImage %s of %s failed: %s', job.image_id, job.instance_id, error)
            self._fail(job, str(error))
        finally:
            self.worker.release_instance(job.instance_id)

    def _snapshot(self, job, host):
        """The host flattens the disk next to the repository; checked, it is renamed into it, so no
        half-written image is ever seen."""
        if not host.supports(Feature.SNAPSHOT):
            raise SnapshotError('the host of the instance cannot save it as an image')
        file_name = f'{job.image_id}.qcow2'
        partial = self.repository.path_of(f'.{file_name}.partial')
        partial.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            host.snapshot(job.instance_id, SnapshotTarget(str(partial), job.no_reboot), self.stop_timeout)
            info = inspect_disk(partial, expected_format='qcow2')
            os.replace(partial, self.repository.path_of(file_name))
        except DriverError as error:
            raise SnapshotError(str(error)) from None
        finally:
            partial.unlink(missing_ok=True)
        self.worker.cloud.images.mark_available(job.image_id, file_name, info.virtual_size)
        self._finish(job)

    def _fail(self, job, reason):
        # The reason stays with the image, so DescribeImages shows it as the state reason.
        self.worker.cloud.images.mark_failed(job.image_id, reason)
        self._finish(job)

    def _finish(self, job):
        (self.jobs / f'{job.image_id}.json').unlink(missing_ok=True)


def _expected_size(session, instance):
    """Bytes the flattened disk may take: the instance's image plus what the guest wrote since."""
    image = session.get(ImageRow, instance.image_id)
    return (image.virtual_size_bytes or image.size_bytes or 0) if image is not None else 0
