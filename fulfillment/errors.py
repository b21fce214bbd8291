"""Fulfillment's domain errors (problem+json via shop.errors)."""

from __future__ import annotations

from shop.errors import Conflict, Forbidden, ValidationFailed


class NotAMember(Forbidden):
    title = "Not a member of this workshop"


class NotTheClaimer(Forbidden):
    title = "Only the villager who claimed this task may do that"


class AlreadyClaiming(Conflict):
    title = "You already hold a packing task"


class LeaseExpired(Conflict):
    title = "Your claim on this task has expired"


class LeaseAlreadyExtended(Conflict):
    title = "This claim's lease was already renewed once"


class TaskNotClaimed(Conflict):
    title = "This task is not claimed"


class WorkshopInactive(Conflict):
    title = "This workshop is not active"


class AlreadyMember(Conflict):
    title = "Already a member of this workshop"


class NotAVillager(ValidationFailed):
    title = "Only villagers can be workshop members"
