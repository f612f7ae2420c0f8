-- The generated benchmark catalog: 10 categories x 10 services x 5 plans (after the gateway has
-- migrated the schema). Used by bench/catalog.sh and bench/performance.sh.
INSERT INTO service_categories (name, slug, description, sort_order, created_at, updated_at)
SELECT 'Category ' || c, 'category-' || c, 'Generated category ' || c, c, now(), now() FROM generate_series(1, 10) c;
INSERT INTO services (category_id, name, slug, description, long_description, icon, version, docker_image, default_port,
                      env_template, tags, documentation, is_active, is_public, is_featured, sort_order, created_at, updated_at)
SELECT c.id, 'Service ' || c.sort_order || '-' || s, 'service-' || c.sort_order || '-' || s, 'A generated service',
       'Longer text about the generated service', 'https://example.com/icon.png', '1.0', 'nginx:1.27', 8080,
       '{"A":"1"}'::jsonb, '["generated","bench"]'::jsonb, 'https://example.com/docs', true, true, s = 1, s, now(), now()
FROM service_categories c, generate_series(1, 10) s;
INSERT INTO service_plans (service_id, name, plan_type, description, monthly_price, cpu_milli, memory_mb, storage_gb,
                           bandwidth_gb, total_quota, used_quota, features, max_instances_per_user, is_active, is_popular,
                           sort_order, created_at, updated_at)
SELECT s.id, t.name, t.name, 'Plan ' || t.name, t.price, 250 * t.n, 256 * t.n, 5 * t.n, 50 * t.n, 100, t.n,
       '["Backups","Monitoring","Support"]'::jsonb, 1, true, t.n = 2, t.n, now(), now()
FROM services s, (VALUES (1, 'FREE', 0), (2, 'BASIC', 25000), (3, 'PRO', 75000), (4, 'PREMIUM', 150000), (5, 'ENTERPRISE', 500000))
     AS t(n, name, price);
