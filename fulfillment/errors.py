"""Fulfillment's domain errors (problem+json via shop.errors)."""

from __future__ import annotations

from shop.errors import Conflict, Forbidden, ValidationFailed
from shop.i18n import N_


class NotAMember(Forbidden):
    title = N_("Not a member of this workshop")


class NotTheClaimer(Forbidden):
    title = N_("Only the villager who claimed this task may do that")


class AlreadyClaiming(Conflict):
    title = N_("You already hold a packing task")


class LeaseExpired(Conflict):
    title = N_("Your claim on this task has expired")


class LeaseAlreadyExtended(Conflict):
    title = N_("This claim's lease was already renewed once")


class TaskNotClaimed(Conflict):
    title = N_("This task is not claimed")


class WorkshopInactive(Conflict):
    title = N_("This workshop is not active")


class AlreadyMember(Conflict):
    title = N_("Already a member of this workshop")


class NotAVillager(ValidationFailed):
    title = N_("Only villagers can be workshop members")
