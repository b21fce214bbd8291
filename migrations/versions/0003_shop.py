"""shop: live sessions, listings and per-buyer counters; orders and order lines

Revision ID: 0003_shop
Revises: 0002_catalog
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_shop'
down_revision = '0002_catalog'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('live_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('streamer_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pinned_listing_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('scheduled', 'live', 'ended')", name=op.f('ck_live_sessions_state_known')),
    sa.ForeignKeyConstraint(['streamer_id'], ['users.id'], name=op.f('fk_live_sessions_streamer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_sessions'))
    )
    op.create_index('ix_live_sessions_streamer_id', 'live_sessions', ['streamer_id'], unique=False)
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('ship_name', sa.String(length=100), nullable=False),
    sa.Column('ship_phone', sa.String(length=40), nullable=False),
    sa.Column('ship_address', sa.String(length=500), nullable=False),
    sa.Column('ship_region', sa.String(length=100), nullable=False),
    sa.Column('carrier', sa.String(length=100), nullable=True),
    sa.Column('tracking_no', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending_payment', 'paid', 'packing', 'packed', 'shipped', 'delivered', 'cancelled', 'expired', 'refunded')", name=op.f('ck_orders_state_known')),
    sa.CheckConstraint('total_fen >= 0', name=op.f('ck_orders_total_not_negative')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_orders_buyer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('buyer_id', 'idempotency_key', name=op.f('uq_orders_buyer_id_idempotency_key'))
    )
    op.create_index('ix_orders_state_expires_at', 'orders', ['state', 'expires_at'], unique=False)
    op.create_table('live_listings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('flash_price_fen', sa.Integer(), nullable=False),
    sa.Column('allotted_qty', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('per_buyer_limit', sa.Integer(), nullable=True),
    sa.Column('on_sale', sa.Boolean(), nullable=False),
    sa.Column('returned_qty', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('allotted_qty > 0', name=op.f('ck_live_listings_allotted_positive')),
    sa.CheckConstraint('flash_price_fen >= 0', name=op.f('ck_live_listings_flash_price_not_negative')),
    sa.CheckConstraint('per_buyer_limit IS NULL OR per_buyer_limit > 0', name=op.f('ck_live_listings_per_buyer_limit_positive')),
    sa.CheckConstraint('remaining <= allotted_qty', name=op.f('ck_live_listings_remaining_within_allotment')),
    sa.CheckConstraint('remaining >= 0', name=op.f('ck_live_listings_remaining_not_negative')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_live_listings_product_id_products')),
    sa.ForeignKeyConstraint(['session_id'], ['live_sessions.id'], name=op.f('fk_live_listings_session_id_live_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_listings'))
    )
    op.create_index('ix_live_listings_session_id', 'live_listings', ['session_id'], unique=False)
    op.create_table('listing_buyer_units',
    sa.Column('listing_id', sa.Integer(), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.CheckConstraint('units >= 0', name=op.f('ck_listing_buyer_units_units_not_negative')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_listing_buyer_units_buyer_id_users')),
    sa.ForeignKeyConstraint(['listing_id'], ['live_listings.id'], name=op.f('fk_listing_buyer_units_listing_id_live_listings')),
    sa.PrimaryKeyConstraint('listing_id', 'buyer_id', name=op.f('pk_listing_buyer_units'))
    )
    op.create_table('order_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('listing_id', sa.Integer(), nullable=True),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('unit_price_fen', sa.Integer(), nullable=False),
    sa.CheckConstraint('qty > 0', name=op.f('ck_order_lines_qty_positive')),
    sa.CheckConstraint('unit_price_fen >= 0', name=op.f('ck_order_lines_unit_price_not_negative')),
    sa.ForeignKeyConstraint(['listing_id'], ['live_listings.id'], name=op.f('fk_order_lines_listing_id_live_listings')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_lines_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines'))
    )
    op.create_index('ix_order_lines_listing_id', 'order_lines', ['listing_id'], unique=False)
    op.create_index('ix_order_lines_order_id', 'order_lines', ['order_id'], unique=False)


def downgrade():
    op.drop_index('ix_order_lines_order_id', table_name='order_lines')
    op.drop_index('ix_order_lines_listing_id', table_name='order_lines')
    op.drop_table('order_lines')
    op.drop_table('listing_buyer_units')
    op.drop_index('ix_live_listings_session_id', table_name='live_listings')
    op.drop_table('live_listings')
    op.drop_index('ix_orders_state_expires_at', table_name='orders')
    op.drop_table('orders')
    op.drop_index('ix_live_sessions_streamer_id', table_name='live_sessions')
    op.drop_table('live_sessions')
